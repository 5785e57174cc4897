"""The registry: places, households, residents, staff, zones and user accounts."""
