"""meshhub provisioning package."""
