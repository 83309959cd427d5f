"""Rules: the numpy hot window and the vectorised rule engine. Second stage."""
