"""Tests of the mirror data path (hamod.datapath)."""
