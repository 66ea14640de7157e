"""sample-service: normalise and validate internationalised host names."""
