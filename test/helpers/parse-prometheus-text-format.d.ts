// The subset of parse-prometheus-text-format's output the tests read (the
// package ships no types). It folds a histogram's series into one: the tests
// use it on histograms without labels only.
declare module 'parse-prometheus-text-format' {
  interface Sample {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  interface Family {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: Sample[];
  }
  function parsePrometheusTextFormat(text: string): Family[];
  export default parsePrometheusTextFormat;
}
