"""The gate history as a static HTML page: `model` reads what it shows, `charts` draws it,
`page` puts both into `index.html` (from `templates/`) and writes the directory."""
