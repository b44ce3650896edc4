"""`kflow plan`, `kflow accept` and `kflow clean` (being written)."""
