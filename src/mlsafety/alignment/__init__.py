"""Alignment: steer systems -- value learning and proxy gaming."""
