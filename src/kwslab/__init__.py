"""kwslab: a keyword-spotting TinyML lab."""
__version__ = "0.1.0"
