"""spark/io"""
