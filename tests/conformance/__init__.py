"""A second implementation of the wire formats, written from docs/ alone (issue 17 item 7)."""
