"""What the relay keeps outside its process, each with a local (one instance, tests, runserver) and a
Redis (several instances) backend: the event bus, the reply log, the socket and rate limits."""
