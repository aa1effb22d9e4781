import BrowserWorkerCore

BrowserWorkerMain.run()
