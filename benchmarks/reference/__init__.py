"""The reference MOBSTER and ASHA (Syne Tune 0.13.0), run in their own environment."""
