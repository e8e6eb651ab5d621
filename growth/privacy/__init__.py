"""Data protection (PIPL): which data is personal, erasing one investor, retention of raw data."""
