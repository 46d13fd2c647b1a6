"""Offline training of the two model versions (scikit-learn + nltk)."""
