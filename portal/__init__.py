"""meshhub portal package."""
