from provider.main import main

main()
