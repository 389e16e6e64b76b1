"""The read side: every view and report the API, the web pages and the CLI show, queried
straight from the store. Services write through the repositories of `kibitz.ports.store`;
nothing here writes."""
