"""The local cloud: stand-ins for the Google Cloud services Fast Render uses."""
