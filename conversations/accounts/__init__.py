"""Who is signing in and out: sign-in throttling by address, the hand-over of a browser's anonymous
conversations on sign-in, and the socket handshake's session and user lookup."""
