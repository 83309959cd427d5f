"""The meter firmware simulator (paho-mqtt): profiles, fault injection, ground truth.

Installed as the `firmware_sim` package (setuptools `package-dir`), reached by `ecocluster sim`.
"""
