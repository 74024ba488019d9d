"""Tests for the video factory."""
