import DurableApp
import DurableExamples

await ExampleApp.application.main()
