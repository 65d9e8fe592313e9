"""spark/jobs"""
