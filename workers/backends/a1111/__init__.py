"""The A1111-family backend: A1111 1.10, Forge, Forge Neo and SD.Next over ``/sdapi/v1``."""
