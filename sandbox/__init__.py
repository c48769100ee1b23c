"""Local stand-ins of Zoom, Graph, Webex, Meet and LiveKit, and the synthetic ministry generator."""
