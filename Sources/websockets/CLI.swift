import WebSockets
@main struct Main { static func main() {} }
