print("fjffi")
