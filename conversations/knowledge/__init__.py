"""Knowledge bases: documents cut into chunks, embedded through the Dedalus API, searched in Postgres,
and cited in replies."""
