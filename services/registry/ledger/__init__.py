"""The registry's base ledger: import of compounds, households and residents."""
