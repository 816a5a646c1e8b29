print("pixeld")
