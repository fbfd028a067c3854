"""meshhub images package."""
