"""meshhub hardware package."""
