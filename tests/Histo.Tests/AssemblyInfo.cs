// Test classes run in parallel again (xunit's default: as many at once as there are cores). They ran one after another
// while the test host crashed natively in about one run in three; the causes were TorchSharp 0.107's implicit-Scalar
// finalizer race (README, Platform notes: Histo converts no number to a Scalar on the fly any more, ScalarRaceTests) and
// builds rewriting running programs' assemblies (Directory.Build.targets). In parallel the suite then passed 20 runs in a
// row (246 tests each, 186-389 s beside other work on 2 cores). Tests that assert bit-identical training runs share
// TorchSharp's global generator and stay in TorchRandomCollection, which runs alone.
[assembly: Xunit.CollectionBehavior(Xunit.CollectionBehavior.CollectionPerClass, DisableTestParallelization = false)]
