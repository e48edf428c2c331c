"""Reusable NiceGUI widgets."""
