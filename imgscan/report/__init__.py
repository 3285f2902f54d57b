"""Reports: the facts rendered for people (text) and for programs (JSON)."""
