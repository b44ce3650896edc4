"""`kflow build`, `kflow runs` and `kflow logs` (being written)."""
