"""Test doubles for vendor libraries (a fake ``pynvml`` built from captures)."""
