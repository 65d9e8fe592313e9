"""spark/transforms"""
