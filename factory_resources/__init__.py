"""Thin adapters, one provider each. Heavy libraries load inside methods, not at import."""
