"""Reports of evaluated runs: tables and plots."""
