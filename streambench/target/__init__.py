"""streambench.target"""
