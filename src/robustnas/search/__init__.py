"""Architecture search: strategies (ask/tell), objectives, and the resumable runner."""
