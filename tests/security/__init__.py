"""Attack replays (docs/security.md): each attack of issue 17, shown to fail."""
