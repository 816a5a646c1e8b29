// placeholder; replaced by the analytics module
