"""The logistics service: stock and donations, distribution to households, help requests,
errands and disinfection."""
