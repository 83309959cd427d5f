from ecocluster.cli import main

main()
