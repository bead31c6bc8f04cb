"""Importers: turn other tools' Jetson logs into the recording format."""
