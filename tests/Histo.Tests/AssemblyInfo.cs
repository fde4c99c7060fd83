// Test classes run one after another. With xunit's default (classes in parallel) the test host crashed natively in
// about one run in three (seen with 59-87 of 141 tests done, no managed exception): several classes training and
// running TorchSharp networks at once in one process. One after another: 4 of 4 runs clean, still about 50 s on 2 cores.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
