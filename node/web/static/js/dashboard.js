// The dashboard's one entry point (a module, so no inline script is ever needed): live updates over the
// event stream, and the in-browser verification on the pages that have a verification panel.

import { startLive } from "./live.js";
import { startVerification } from "./pages.js";

startLive();
startVerification();
