"""One module per rule type: its config model and its vectorised kernel."""
