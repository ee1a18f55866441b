"""The platform kit: what every Inwire service stands on. It knows no service."""
