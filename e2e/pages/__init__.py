"""Page objects: one class per view, methods named for what a person does."""
