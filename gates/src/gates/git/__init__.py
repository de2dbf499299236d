"""Git access: the repository's commits, tree state and the commands gates runs in it."""
