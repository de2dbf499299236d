"""Views of runs and history for people: the console, GitHub statuses and comments, HTML."""
