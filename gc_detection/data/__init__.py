"""Dataset generation and serialisation in the OD API's formats."""
